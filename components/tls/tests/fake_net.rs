//! The TLS component over the HTTP tests' in-memory TCP stack, under virtual time: an HTTP
//! server on `Tls<FakeNet, ..>`, real TLS clients (rustls's unbuffered client with this
//! crate's provider, checking the server's chain against a test CA) and hostile ones
//! (garbage, truncated and oversized records, silence, a thousand half-open handshakes).
//!
//! Certificates are made by openssl at test time (`need` fails the test on CI without it).

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

// The HTTP component's test doubles: the in-memory TCP stack, the virtual clock, the
// store.
#[path = "../../http/tests/common/mod.rs"]
mod common;

use common::{Client, FakeClock, FakeKv, FakeNet, HOME, TestIdle};
use morgana_http::{Server, StaticSite};
use morgana_rt::{Either, block_on, select};
use morgana_signatures::Entropy;
use morgana_tls::rustls;
use morgana_tls::{Config, Ecdsa, EcdsaOrRsa, Identity, KeyKinds, Rsa, Tls};
use rustls::client::{ClientConfig, ClientSessionStore, Resumption, UnbufferedClientConnection};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::unbuffered::ConnectionState;
use rustls::{HandshakeKind, NamedGroup, RootCertStore};

// ---------------------------------------------------------------------------------------
// Entropy and certificates

#[derive(Clone, Copy)]
struct TestEntropy {
    strong: bool,
}

#[derive(Debug)]
struct NoError;

impl core::fmt::Display for NoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("none")
    }
}

impl Entropy for TestEntropy {
    type Error = NoError;
    fn fill(&self, buf: &mut [u8]) -> Result<(), NoError> {
        // The host's generator: the tests want real keys, not a pattern.
        getrandom_like(buf);
        Ok(())
    }
    fn is_strong(&self) -> bool {
        self.strong
    }
}

/// Random bytes from the host (`/dev/urandom`).
fn getrandom_like(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("/dev/urandom");
}

fn need(program: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(std::process::Stdio::null())
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

struct Pems {
    dir: PathBuf,
}

impl Pems {
    /// A P-256 CA; `ec` (P-256: localhost), `other` (P-256: other.test), `rsa` (RSA 2048:
    /// localhost), `rsa1024`, `p384` (P-384: localhost), `ec8` (`ec`'s key as PKCS#8, its
    /// certificate); all made by openssl once per test run.
    fn get() -> Option<&'static Pems> {
        static PEMS: OnceLock<Pems> = OnceLock::new();
        if !need("openssl") {
            return None;
        }
        Some(PEMS.get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("tls-unit-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let script = "set -e
                openssl ecparam -name prime256v1 -genkey -noout -out ca.key
                openssl req -x509 -new -key ca.key -sha256 -days 30 -subj '/CN=Test CA' -out ca.pem
                openssl ecparam -name prime256v1 -genkey -noout -out ec.key
                openssl ecparam -name prime256v1 -genkey -noout -out other.key
                openssl genrsa -out rsa.key 2048 2>/dev/null
                openssl genrsa -out rsa1024.key 1024 2>/dev/null
                openssl ecparam -name secp384r1 -genkey -noout -out p384.key
                for n in ec:localhost other:other.test rsa:localhost rsa1024:localhost p384:localhost; do
                  name=${n%%:*}; dns=${n#*:}
                  openssl req -new -key $name.key -subj /CN=$dns -out $name.csr
                  printf 'subjectAltName=DNS:%s\\n' $dns > $name.ext
                  openssl x509 -req -in $name.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -sha256 -extfile $name.ext -out $name.pem 2>/dev/null
                done
                openssl pkcs8 -topk8 -nocrypt -in ec.key -out ec8.key
                openssl pkcs8 -topk8 -nocrypt -in p384.key -out p384-8.key
                cp ec.pem ec8.pem";
            let out = std::process::Command::new("sh")
                .args(["-c", script])
                .current_dir(&dir)
                .output()
                .expect("openssl");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            Pems { dir }
        }))
    }

    fn read(&self, file: &str) -> &'static [u8] {
        Box::leak(
            std::fs::read(self.dir.join(file))
                .unwrap()
                .into_boxed_slice(),
        )
    }

    fn identity(&self, name: &str) -> Identity<'static> {
        Identity {
            chain_pem: self.read(&format!("{name}.pem")),
            key_pem: self.read(&format!("{name}.key")),
        }
    }
}

// ---------------------------------------------------------------------------------------
// A TLS client over the fake network

/// The versions the server offers: TLS 1.2 only when the crate is built with its `tls12`
/// feature (rustls's `TLS12` exists only then).
const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[
    &rustls::version::TLS13,
    #[cfg(feature = "tls12")]
    &rustls::version::TLS12,
];

/// rustls's clock for the client: the host's real time (the certificates are real).
#[derive(Debug)]
struct HostTime;

impl rustls::time_provider::TimeProvider for HostTime {
    fn current_time(&self) -> Option<UnixTime> {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(UnixTime::since_unix_epoch(since))
    }
}

/// A session store for the test client (TLS 1.3 tickets and TLS 1.2 sessions).
#[derive(Debug, Default)]
struct Sessions {
    tls13: Mutex<Vec<rustls::client::Tls13ClientSessionValue>>,
    tls12: Mutex<Option<rustls::client::Tls12ClientSessionValue>>,
}

impl ClientSessionStore for Sessions {
    fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {}
    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        None
    }
    fn set_tls12_session(
        &self,
        _: ServerName<'static>,
        v: rustls::client::Tls12ClientSessionValue,
    ) {
        *self.tls12.lock().unwrap() = Some(v);
    }
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.tls12.lock().unwrap().clone()
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        *self.tls12.lock().unwrap() = None;
    }
    fn insert_tls13_ticket(
        &self,
        _: ServerName<'static>,
        v: rustls::client::Tls13ClientSessionValue,
    ) {
        self.tls13.lock().unwrap().push(v);
    }
    fn take_tls13_ticket(
        &self,
        _: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.tls13.lock().unwrap().pop()
    }
}

fn client_config(
    pems: &Pems,
    version: &'static rustls::SupportedProtocolVersion,
    sessions: Option<Arc<Sessions>>,
) -> Arc<ClientConfig> {
    let mut seed = [0u8; 32];
    getrandom_like(&mut seed);
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pems.read("ca.pem")).unwrap())
        .unwrap();
    let mut config = ClientConfig::builder_with_details(
        Arc::new(morgana_tls::provider(seed)),
        Arc::new(HostTime),
    )
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = match sessions {
        Some(s) => Resumption::store(s),
        None => Resumption::disabled(),
    };
    Arc::new(config)
}

/// A TLS client connection over a fake TCP client.
struct TlsClient {
    tcp: Client,
    conn: UnbufferedClientConnection,
    incoming: Vec<u8>,
    outgoing: Vec<u8>,
    plain: Vec<u8>,
    closed: bool,
}

impl TlsClient {
    fn new(tcp: Client, config: Arc<ClientConfig>, name: &str) -> TlsClient {
        let name = ServerName::try_from(String::from(name)).unwrap();
        TlsClient {
            tcp,
            conn: UnbufferedClientConnection::new(config, name).unwrap(),
            incoming: Vec::new(),
            outgoing: Vec::new(),
            plain: Vec::new(),
            closed: false,
        }
    }

    /// Runs the state machine; sends `data` once writing is possible; returns when
    /// `done(plain)` holds or the server closed. Errors come back as text.
    async fn exchange(
        &mut self,
        mut data: Option<&[u8]>,
        done: impl Fn(&[u8]) -> bool,
    ) -> Result<(), String> {
        loop {
            if done(&self.plain) {
                return Ok(());
            }
            let status = self.conn.process_tls_records(&mut self.incoming);
            let discard = status.discard;
            let state = status.state.map_err(|e| format!("{e}"))?;
            let mut wait = false;
            match state {
                ConnectionState::EncodeTlsData(mut e) => {
                    let mut buf = vec![0u8; 16 * 1024];
                    let n = e.encode(&mut buf).map_err(|e| format!("{e}"))?;
                    self.outgoing.extend_from_slice(&buf[..n]);
                }
                ConnectionState::TransmitTlsData(t) => {
                    self.tcp.send(core::mem::take(&mut self.outgoing));
                    t.done();
                }
                ConnectionState::BlockedHandshake => wait = true,
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(rec) = r.next_record() {
                        self.plain
                            .extend_from_slice(rec.map_err(|e| format!("{e}"))?.payload);
                    }
                }
                ConnectionState::WriteTraffic(mut w) => {
                    if let Some(d) = data.take() {
                        let mut buf = vec![0u8; d.len() + 1024];
                        let n = w.encrypt(d, &mut buf).map_err(|e| format!("{e}"))?;
                        self.tcp.send(&buf[..n]);
                    } else {
                        wait = true;
                    }
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.closed = true;
                    return Ok(());
                }
                _ => return Err(String::from("unexpected state")),
            }
            self.incoming.drain(..discard);
            if wait {
                if self.tcp.server_closed() && self.tcp.available() == 0 {
                    self.closed = true;
                    return Err(String::from("server closed the connection"));
                }
                self.tcp.readable().await;
                let more = self.tcp.take_all();
                if more.is_empty() && self.tcp.server_closed() {
                    self.closed = true;
                    return Err(String::from("server closed the connection"));
                }
                self.incoming.extend_from_slice(&more);
            }
        }
    }

    /// Sends one GET and returns the response (head and body, by Content-Length).
    async fn get(&mut self, path: &str) -> Result<String, String> {
        self.plain.clear();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        self.exchange(Some(request.as_bytes()), complete_response)
            .await?;
        Ok(String::from_utf8_lossy(&self.plain).into_owned())
    }
}

/// Whether `bytes` hold a whole response with a Content-Length body.
fn complete_response(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let len = text[..end]
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    bytes.len() >= end + 4 + len
}

// ---------------------------------------------------------------------------------------
// Harness

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Env {
    net: FakeNet,
    clock: FakeClock,
    pems: &'static Pems,
}

/// Runs `script` against HTTPS (StaticSite over FakeKv) on `identities`.
fn run<F, Fut>(identities: &[&str], max_connections: usize, script: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: core::future::Future<Output = ()>,
{
    let Some(pems) = Pems::get() else {
        return;
    };
    let net = FakeNet::default();
    let clock = FakeClock::default();
    let env = Env {
        net: net.clone(),
        clock: clock.clone(),
        pems,
    };
    let identities: Vec<Identity<'static>> = identities.iter().map(|n| pems.identity(n)).collect();
    let mut idle = TestIdle {
        clock: clock.clone(),
    };
    block_on(
        async move {
            let mut config = Config::new(&identities);
            config.handshake_timeout = HANDSHAKE_TIMEOUT;
            config.tls12 = cfg!(feature = "tls12");
            let tls: Tls<_, _, _> =
                Tls::connect(net, clock.clone(), TestEntropy { strong: true }, config)
                    .await
                    .expect("TLS starts");
            let mut http = common::config(max_connections);
            http.max_connections = max_connections;
            let server = Server::connect(tls, clock, http)
                .await
                .expect("server starts");
            match select(server.serve(StaticSite::new(FakeKv::new())), script(env)).await {
                Either::Left(r) => panic!("server stopped: {r:?}"),
                Either::Right(()) => {}
            }
        },
        &mut idle,
    );
}

fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

// ---------------------------------------------------------------------------------------
// Real clients

#[test]
fn real_clients_are_served_over_tls13_and_tls12() {
    run(&["ec"], 8, |env| async move {
        for &version in VERSIONS {
            let config = client_config(env.pems, version, None);
            let mut c = TlsClient::new(env.net.connect(), config, "localhost");
            let r = c.get("/").await.unwrap();
            assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
            assert_eq!(body_of(&r), HOME);
            assert_eq!(c.conn.protocol_version(), Some(version.version));
            assert_eq!(c.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
            // Keep-alive: a second request on the same TLS connection, a big one.
            let r = c.get("/big.bin").await.unwrap();
            assert_eq!(body_of(&r).len(), common::BIG_LEN);
            assert!(body_of(&r).bytes().all(|b| b == b'x'));
        }
    });
}

#[test]
fn sni_picks_the_certificate_and_rsa_only_clients_get_the_rsa_one() {
    run(&["ec", "other", "rsa"], 8, |env| async move {
        // The client verifies the chain and the name: a wrong certificate fails.
        let config = client_config(env.pems, &rustls::version::TLS13, None);
        let mut c = TlsClient::new(env.net.connect(), config.clone(), "other.test");
        assert!(c.get("/").await.unwrap().starts_with("HTTP/1.1 200"));
        let mut c = TlsClient::new(env.net.connect(), config, "localhost");
        assert!(c.get("/").await.unwrap().starts_with("HTTP/1.1 200"));
        assert_eq!(
            c.conn.peer_certificates().map(|c| c[0].as_ref().to_vec()),
            Some(
                CertificateDer::from_pem_slice(env.pems.read("ec.pem"))
                    .unwrap()
                    .as_ref()
                    .to_vec()
            )
        );
    });
}

#[test]
fn sessions_resume_with_tickets_on_both_versions() {
    run(&["ec"], 8, |env| async move {
        for &version in VERSIONS {
            let sessions = Arc::new(Sessions::default());
            let config = client_config(env.pems, version, Some(sessions.clone()));
            let mut first = TlsClient::new(env.net.connect(), config.clone(), "localhost");
            first.get("/").await.unwrap();
            assert_eq!(first.conn.handshake_kind(), Some(HandshakeKind::Full));
            let mut second = TlsClient::new(env.net.connect(), config, "localhost");
            second.get("/").await.unwrap();
            assert_eq!(
                second.conn.handshake_kind(),
                Some(HandshakeKind::Resumed),
                "{version:?}"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------
// Hostile clients

/// Waits until the server closed, and returns what it sent.
async fn everything(c: &Client) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        c.readable().await;
        got.extend(c.take_all());
        if c.server_closed() {
            got.extend(c.take_all());
            return got;
        }
    }
}

/// A fatal alert record: content type 21, then level 2 (fatal) and `description`.
fn is_alert(bytes: &[u8], description: u8) -> bool {
    bytes.len() >= 7 && bytes[0] == 21 && bytes[5] == 2 && bytes[6] == description
}

#[test]
fn garbage_gets_an_alert_and_the_server_goes_on() {
    run(&["ec"], 8, |env| async move {
        let c = env.net.connect();
        c.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let got = everything(&c).await;
        assert!(
            got.first() == Some(&21),
            "no alert for plaintext HTTP: {got:?}"
        );
        // A handshake record of nonsense: decode_error (50).
        let c = env.net.connect();
        c.send([22, 3, 1, 0, 6, 1, 0, 0, 2, 0xff, 0xff]);
        let got = everything(&c).await;
        assert!(is_alert(&got, 50) || is_alert(&got, 47), "{got:?}");
        // Application data before the handshake: unexpected_message (10).
        let c = env.net.connect();
        c.send([23, 3, 3, 0, 4, 1, 2, 3, 4]);
        let got = everything(&c).await;
        assert!(is_alert(&got, 10), "{got:?}");
        // A record longer than TLS allows: rustls calls it a decode_error (50) rather
        // than a record_overflow (22); either ends it.
        let c = env.net.connect();
        c.send([22, 3, 1, 0xff, 0xff]);
        let got = everything(&c).await;
        assert!(is_alert(&got, 50) || is_alert(&got, 22), "{got:?}");
        // Real clients are still served.
        let config = client_config(env.pems, &rustls::version::TLS13, None);
        let mut c = TlsClient::new(env.net.connect(), config, "localhost");
        assert_eq!(body_of(&c.get("/").await.unwrap()), HOME);
    });
}

#[test]
fn a_truncated_record_and_a_close_end_the_connection_quietly() {
    run(&["ec"], 8, |env| async move {
        let c = env.net.connect();
        c.send([22, 3, 1, 0, 100, 1, 0, 0, 96, 3, 3]);
        c.shutdown();
        c.dropped().await;
        assert!(env.clock.elapsed() < HANDSHAKE_TIMEOUT);
        // Truncated in the middle of application data, after a real handshake.
        let config = client_config(env.pems, &rustls::version::TLS13, None);
        let mut t = TlsClient::new(env.net.connect(), config, "localhost");
        t.get("/").await.unwrap();
        t.tcp.send([23, 3, 3, 0x10, 0, 1, 2, 3]);
        t.tcp.shutdown();
        t.tcp.dropped().await;
    });
}

#[test]
fn a_silent_or_stalled_client_is_dropped_at_the_handshake_timeout() {
    run(&["ec"], 8, |env| async move {
        // Connects and says nothing.
        let c = env.net.connect();
        c.dropped().await;
        let t = env.clock.elapsed();
        assert!(
            t >= HANDSHAKE_TIMEOUT && t < HANDSHAKE_TIMEOUT + Duration::from_secs(3),
            "{t:?}"
        );
        // Sends its ClientHello and stops: gets the server's flight, then the close.
        let start = env.clock.elapsed();
        let config = client_config(env.pems, &rustls::version::TLS13, None);
        let mut hello = TlsClient::new(env.net.connect(), config, "localhost");
        let status = hello.conn.process_tls_records(&mut []);
        let Ok(ConnectionState::EncodeTlsData(mut e)) = status.state else {
            panic!("no ClientHello");
        };
        let mut buf = vec![0u8; 4096];
        let n = e.encode(&mut buf).unwrap();
        hello.tcp.send(&buf[..n]);
        let got = everything(&hello.tcp).await;
        assert_eq!(got.first(), Some(&22), "no ServerHello");
        let t = env.clock.elapsed() - start;
        assert!(
            t >= HANDSHAKE_TIMEOUT && t < HANDSHAKE_TIMEOUT + Duration::from_secs(3),
            "{t:?}"
        );
    });
}

// Heap bytes allocated and not freed by this thread (the tests run on several threads).
std::thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards to the system allocator; the counter is a thread-local `Cell` with a
// const initialiser, which never allocates.
#[allow(unsafe_code)]
unsafe impl core::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        let _ = LIVE.try_with(|l| l.set(l.get() + layout.size() as isize));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

#[test]
fn a_thousand_half_open_handshakes_cost_bounded_memory_and_real_clients_are_served() {
    run(&["ec"], 1100, |env| async move {
        let before = live_bytes();
        let mut half_open = Vec::new();
        for _ in 0..1000 {
            let c = env.net.connect();
            c.send([22, 3, 1, 2, 0, 1, 0, 1, 0xfc, 3, 3]);
            half_open.push(c);
        }
        // Let the server accept and read them all.
        for _ in 0..50 {
            common::yield_now().await;
        }
        assert_eq!(env.net.accepted(), 1000);
        let per = (live_bytes() - before) / 1000;
        println!("{per} bytes per half-open handshake (HTTP connection included)");
        assert!(per < 32 * 1024, "{per} bytes per half-open handshake");
        let config = client_config(env.pems, VERSIONS[VERSIONS.len() - 1], None);
        let mut c = TlsClient::new(env.net.connect(), config, "localhost");
        assert_eq!(body_of(&c.get("/").await.unwrap()), HOME);
        // The handshake timeout frees them all.
        for c in &half_open {
            c.dropped().await;
        }
        assert!(env.clock.elapsed() < HANDSHAKE_TIMEOUT + Duration::from_secs(3));
    });
}

// ---------------------------------------------------------------------------------------
// Start-up refusals

fn connect_error_with<K: KeyKinds>(entropy: TestEntropy, identities: &[Identity<'_>]) -> String {
    let clock = FakeClock::default();
    let mut idle = TestIdle {
        clock: clock.clone(),
    };
    let mut config = Config::new(identities);
    config.tls12 = cfg!(feature = "tls12");
    let r = block_on(
        Tls::<_, _, _, K>::connect(FakeNet::default(), clock, entropy, config),
        &mut idle,
    );
    match r {
        Ok(_) => String::from("started"),
        Err(e) => format!("{e}"),
    }
}

fn connect_error(entropy: TestEntropy, identities: &[Identity<'_>]) -> String {
    connect_error_with::<EcdsaOrRsa>(entropy, identities)
}

#[test]
fn weak_entropy_and_bad_identities_are_refused_with_the_fix() {
    let Some(pems) = Pems::get() else {
        return;
    };
    let ec = pems.identity("ec");
    let e = connect_error(TestEntropy { strong: false }, &[ec]);
    assert!(e.contains("-cpu max") && e.contains("virtio-rng"), "{e}");
    assert_eq!(
        connect_error(TestEntropy { strong: true }, &[ec]),
        "started"
    );
    let strong = TestEntropy { strong: true };
    assert_eq!(connect_error(strong, &[]), "no certificate configured");
    let mismatch = Identity {
        chain_pem: ec.chain_pem,
        key_pem: pems.identity("other").key_pem,
    };
    assert_eq!(
        connect_error(strong, &[ec, mismatch]),
        "certificate 1: the private key does not match the certificate"
    );
    let short = pems.identity("rsa1024");
    assert_eq!(
        connect_error(strong, &[short]),
        "certificate 0: the RSA key is shorter than 2048 bits"
    );
    let garbage = Identity {
        chain_pem: b"not a certificate",
        key_pem: ec.key_pem,
    };
    assert_eq!(
        connect_error(strong, &[garbage]),
        "certificate 0: the certificate chain holds no CERTIFICATE block"
    );
    let no_key = Identity {
        chain_pem: ec.chain_pem,
        key_pem: ec.chain_pem,
    };
    assert!(connect_error(strong, &[no_key]).starts_with("certificate 0: no private key"));
    // An appliance built for one kind of key names it.
    let rsa = pems.identity("rsa");
    assert_eq!(
        connect_error_with::<Ecdsa>(strong, &[rsa]),
        "certificate 0: the private key is not ECDSA P-256 (this appliance takes ECDSA keys only)"
    );
    assert_eq!(connect_error_with::<Rsa>(strong, &[rsa]), "started");
    assert_eq!(
        connect_error_with::<Rsa>(strong, &[ec]),
        "certificate 0: the private key is not RSA (this appliance takes RSA keys only)"
    );
    // The key formats read by the component's own DER reader: PKCS#8 as well as SEC1,
    // and a curve other than P-256 named in either.
    assert_eq!(connect_error(strong, &[pems.identity("ec8")]), "started");
    let p384 = pems.identity("p384");
    assert_eq!(
        connect_error(strong, &[p384]),
        "certificate 0: the EC private key is not a P-256 key (the only curve supported)"
    );
    let p384_pkcs8 = Identity {
        chain_pem: p384.chain_pem,
        key_pem: pems.read("p384-8.key"),
    };
    assert_eq!(
        connect_error_with::<Ecdsa>(strong, &[p384_pkcs8]),
        "certificate 0: the EC private key is not a P-256 key (the only curve supported)"
    );
    // Identity's Debug never shows the key.
    let shown = format!("{ec:?}");
    assert!(
        shown.contains("<secret>") && !shown.contains("PRIVATE"),
        "{shown}"
    );
}

/// Built without the `tls12` feature, a configuration that asks for TLS 1.2 (the default)
/// stops the appliance with the fix named.
#[cfg(not(feature = "tls12"))]
#[test]
fn tls12_asked_for_without_the_feature_is_refused_with_the_fix() {
    let Some(pems) = Pems::get() else {
        return;
    };
    let clock = FakeClock::default();
    let mut idle = TestIdle {
        clock: clock.clone(),
    };
    let identities = [pems.identity("ec")];
    let r = block_on(
        Tls::<_, _, _, Ecdsa>::connect(
            FakeNet::default(),
            clock,
            TestEntropy { strong: true },
            Config::new(&identities),
        ),
        &mut idle,
    );
    let e = r.err().map(|e| format!("{e}")).unwrap_or_default();
    assert!(
        e.contains("without its `tls12` feature") && e.contains("tls12: false"),
        "{e}"
    );
}
